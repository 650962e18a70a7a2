"""OpenStack backend: :mod:`.spawner` (lifecycle), :mod:`.plan` (pure request building),
:mod:`.status` (one Nova listing per refresh), :mod:`.connection` (openstacksdk sessions, errors)."""
