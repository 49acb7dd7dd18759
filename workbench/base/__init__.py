"""Floor 1, the vocabulary every other floor shares: the pt-BR catalog and the errors.

Nothing here imports another part of the product.
"""
