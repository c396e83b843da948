"""Presentation layer: every sentence, verdict rule, table and chart. Takes fitted results from
`helpers.models` and `helpers.checks`; never fits anything itself."""
