"""care-trends: did a council's programme change the trend of children entering care?

The package is layered (ARCHITECTURE.md): core -> data, ssda903 -> spec -> models -> checks ->
present -> run -> cli. Stable entry points for scripts (DESIGN.md): `helpers.data`,
`helpers.spec`, `helpers.its`, `helpers.its_batch`, `helpers.comparative`,
`helpers.sensitivity`, and the `care-trends` command.
"""

__version__ = "0.1.0"
