"""leanbench.evaluate"""
