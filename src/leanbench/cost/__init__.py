"""leanbench.cost"""
