"""leanbench.stats"""
