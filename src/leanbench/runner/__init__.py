"""leanbench.runner"""
