"""The ``capabilities`` resource: what this server offers (ELBOs, guides, optimizers and
their options, result formats, k-hat readings), derived from the engine and the routes."""
