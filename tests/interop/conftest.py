"""The interop tests' directory holds the server's node_modules; pytest must not walk it."""

collect_ignore = ["node_modules"]
