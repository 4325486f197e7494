"""Checking a generated HTML page: well-formed, self-contained (opens offline), no scripts."""

import re
from html.parser import HTMLParser

VOID = {"meta", "br", "rect", "line", "circle", "polyline", "img", "link", "input", "hr"}


class TagChecker(HTMLParser):
    """Checks that every opened tag is closed in order, and collects what a browser would fetch."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.fetches, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") or (name == "style" and "url(" in (value or "")):
                self.fetches.append((tag, name, value))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_html(text):
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert checker.stack == [], checker.stack
    assert not checker.fetches, checker.fetches  # nothing loaded from anywhere: opens offline
    assert "<script" not in text.lower()
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)  # only the SVG namespace URI
    return checker
