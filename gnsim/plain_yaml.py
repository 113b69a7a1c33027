"""YAML as plain data, without aliases: a few hundred bytes of nested aliases (`&a [*b, *b, ...]`)
expand to gigabytes when anything walks or prints the result (a "billion laughs")."""

from __future__ import annotations

import yaml


def load_yaml(text: str, what: str = "YAML files"):
    """The plain data of `text` (a SafeLoader: no objects); an alias is a yaml.YAMLError naming
    it and its line, raised before anything is built."""

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(
                    f"aliases are refused in {what} (*{event.anchor} at line {event.start_mark.line + 1})"
                )
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliases)  # a SafeLoader: builds plain data only
