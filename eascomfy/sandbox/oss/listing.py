"""Paging for the list operations (ListBuckets, ListObjects v1/v2, ListParts,
ListMultipartUploads): markers, ``max-*`` limits and common prefixes under a delimiter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterable, TypeVar

from .errors import invalid_argument

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    prefixes: list[str]
    truncated: bool
    last_name: str  # the last item key or common prefix returned: the next marker
    last_item: T | None


def collapse(entries: Iterable[tuple[str, T]], prefix: str, delimiter: str, limit: int, resume: str) -> Page[T]:
    """One page of ``entries`` (sorted, already filtered by prefix and marker), rolling names that
    contain ``delimiter`` after ``prefix`` up into common prefixes. ``limit`` counts items and
    prefixes together; a prefix equal to ``resume`` (the previous page's last entry) is skipped."""
    page: Page[T] = Page([], [], False, "", None)
    for name, item in entries:
        group = None
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                group = name[: cut + len(delimiter)]
                if group == resume or (page.prefixes and page.prefixes[-1] == group):
                    continue
        if len(page.items) + len(page.prefixes) >= limit:
            page.truncated = True
            return page
        if group is None:
            page.items.append(item)
            page.last_name, page.last_item = name, item
        else:
            page.prefixes.append(group)
            page.last_name, page.last_item = group, None
    return page


def int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise invalid_argument(name, value, f"Argument {name} must be an integer between {low} and {high}.")
    return int(value)
