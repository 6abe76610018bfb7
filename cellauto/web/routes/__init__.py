"""The web app's pages, one module per family; each declares its ``ROUTES``."""
