"""In-tree scheduler plugins, one module each; ``registry.py`` names them."""
