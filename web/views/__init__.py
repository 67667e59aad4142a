"""The site's views, one module per page family."""
