"""Data sets in their own formats: loaders, the example type and format errors."""
