"""What a patch relies on in another library, and the check that it is still there as it was.

>>> pin = Pin("json:JSONDecoder", "decode", parameters=("self", "s", "_w"))
>>> pin.broken() is None
True
>>> Pin("json:JSONDecoder", "no_such_thing").broken()
'json:JSONDecoder has no attribute no_such_thing'
>>> Pin("json:JSONDecoder", "decode", parameters=("self", "s")).broken()
"json:JSONDecoder.decode takes ('self', 's', '_w'), the patch expects ('self', 's')"
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pin:
    """One private symbol (or overridden method) a patch relies on.

    Parameters
    ----------
    owner
        ``module:qualname`` of the object that holds it (``"faust.stores.rocksdb:Store"``).
    name
        The attribute.
    parameters
        When it is a callable: its parameter names, in order, as the patch calls or overrides it.
    assigned_in
        When it is an instance attribute: the method (of the owner or a base class) whose source
        assigns ``self.<name>``.
    """

    owner: str
    name: str
    parameters: tuple[str, ...] | None = None
    assigned_in: str | None = None

    def resolve_owner(self) -> Any:
        module_name, _, qualname = self.owner.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in qualname.split(".") if qualname else ():
            target = getattr(target, part)
        return target

    def broken(self) -> str | None:
        """None while the pin holds, else what changed."""
        owner = self.resolve_owner()
        if self.assigned_in is not None:
            assigning = rf"self\.{re.escape(self.name)}\b\s*(:[^=]*)?=(?!=)"
            for cls in inspect.getmro(owner):  # the method may be a base class's
                method = vars(cls).get(self.assigned_in)
                if inspect.isfunction(method) and re.search(assigning, inspect.getsource(method)):
                    return None
            return f"no {self.assigned_in} of {self.owner} (or its bases) assigns self.{self.name}"
        if not hasattr(owner, self.name):
            return f"{self.owner} has no attribute {self.name}"
        if self.parameters is not None:
            found = tuple(inspect.signature(getattr(owner, self.name)).parameters)
            if found != self.parameters:
                return f"{self.owner}.{self.name} takes {found}, the patch expects {self.parameters}"
        return None
