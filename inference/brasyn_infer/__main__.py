"""``python -m brasyn_infer``: the same as the ``brasyn-infer`` command."""

from brasyn_infer.cli import main

main()
