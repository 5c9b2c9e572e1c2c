"""log package."""
