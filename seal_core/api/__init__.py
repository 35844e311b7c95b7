"""The contract plugins build on: hook specifications, component base classes, the data passed between engine and plugins, errors."""
