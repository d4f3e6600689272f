"""leanbench.measure"""
