"""The ``webhooks`` resource: the tenant's signing secret."""
