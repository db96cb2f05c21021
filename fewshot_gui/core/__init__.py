"""The pure core: everything the app knows, with no Qt."""
