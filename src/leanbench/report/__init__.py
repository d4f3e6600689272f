"""leanbench.report"""
