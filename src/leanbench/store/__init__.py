"""leanbench.store"""
