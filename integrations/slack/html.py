"""Block Kit as HTML: how a Slack message (or modal) would look, for the Slack sandbox page and the dashboard's
"Slack card" panel. Only what Orderline posts is drawn: header, section (text, fields, a button accessory),
context, divider, actions (buttons), and in modals input blocks (plain text, static select, radio buttons).

mrkdwn is Slack's, not Markdown: *bold*, _italic_, ~strike~, `code`, <url|label>, <@U123>, <!date^…|fallback>,
:emoji: and Slack's own escaping (&amp; &lt; &gt;). Everything is HTML-escaped first; nothing from a message
becomes markup except through the few tags made here.

Buttons carry `data-block-id` and `data-action-id` (and `data-url` for link buttons); the page's script sends
those to the sandbox endpoint, which takes the element itself from the stored message, as Slack does.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

Json = dict[str, Any]
UserName = Callable[[str], str]

# The emoji Orderline's blocks use, drawn as symbols that ordinary system fonts have (DejaVu, Liberation), so the
# page reads the same on a server or CI browser without an emoji font. An unknown :name: stays as text.
EMOJI: Mapping[str, str] = {
    "warning": "⚠", "double_vertical_bar": "‖", "x": "✖", "memo": "✎", "speech_balloon": "✉",
    "outbox_tray": "➤", "package": "▣", "truck": "➜", "white_check_mark": "✔", "heavy_check_mark": "✔",
    "rotating_light": "⚑", "eyes": "◉", "zap": "⚡", "slack": "#", "bell": "♪", "hourglass": "⌛",
    "arrow_right": "→", "leftwards_arrow_with_hook": "↩", "airplane": "✈",
}
_SPECIAL = re.compile(r"<([^<>]+)>")
_EMOJI = re.compile(r":([a-z0-9_+\-]+):")
_STYLES = (
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), "strong"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), "em"),
    (re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])"), "s"),
)


def _no_user(user_id: str) -> str:
    return user_id


def _inline(text: str) -> str:
    """Escaped text with bold, italic, strike and emoji; `text` has Slack's escaping already undone."""
    out = str(escape(text))
    for pattern, tag in _STYLES:
        out = pattern.sub(rf"<{tag}>\1</{tag}>", out)
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), out)


def _special(inner: str, user_name: UserName) -> str:
    """One <…> sequence: a user or group mention, a date, a link."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f'<span class="sk-mention">@{escape(user_name(target[1:]))}</span>'
    if target.startswith("!subteam^"):
        return f'<span class="sk-mention">@{escape(label or target[9:])}</span>'
    if target.startswith("!date^"):
        return f"<time>{escape(html.unescape(label))}</time>"
    if target.startswith("!"):
        return f'<span class="sk-mention">@{escape(target[1:])}</span>'
    url = html.unescape(target)
    if not re.match(r"^(https?|mailto):", url):
        return str(escape(html.unescape(inner)))
    shown = escape(html.unescape(label or url))
    return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{shown}</a>'


def _styled(text: str, user_name: UserName) -> str:
    """mrkdwn outside code spans: <…> sequences and styles, line breaks kept."""
    parts: list[str] = []
    position = 0
    for match in _SPECIAL.finditer(text):
        parts.append(_inline(html.unescape(text[position:match.start()])))
        parts.append(_special(match.group(1), user_name))
        position = match.end()
    parts.append(_inline(html.unescape(text[position:])))
    return "".join(parts)


def mrkdwn(text: str, user_name: UserName = _no_user) -> Markup:
    """Slack mrkdwn as HTML (code spans and blocks first, so nothing inside them is styled)."""
    pieces = re.split(r"(```[\s\S]*?```|`[^`\n]+`)", text or "")
    out: list[str] = []
    for piece in pieces:
        if piece.startswith("```") and piece.endswith("```") and len(piece) >= 6:
            out.append(f"<pre>{escape(html.unescape(piece[3:-3]))}</pre>")
        elif piece.startswith("`") and piece.endswith("`") and len(piece) >= 2:
            out.append(f"<code>{escape(html.unescape(piece[1:-1]))}</code>")
        else:
            out.append(_styled(piece, user_name))
    return Markup("".join(out).replace("\n", "<br>"))  # noqa: S704 - built only from escaped parts


def text_object(value: Any, user_name: UserName = _no_user) -> Markup:
    """A Block Kit text object (plain_text or mrkdwn) as HTML."""
    if not isinstance(value, Mapping):
        return Markup("")
    if value.get("type") == "mrkdwn":
        return mrkdwn(str(value.get("text") or ""), user_name)
    escaped = str(escape(value.get("text") or ""))
    return Markup(_EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), escaped))  # noqa: S704 - escaped above


def button(element: Mapping[str, Any], block_id: str, *, enabled: bool = True) -> Markup:
    """A button; link buttons open their URL (and, like Slack, still tell the app they were clicked)."""
    style = str(element.get("style") or "")
    attributes = {"type": "button", "class": f"sk-btn {style}".strip(), "data-block-id": block_id,
                  "data-action-id": str(element.get("action_id") or "")}
    if element.get("url"):
        attributes["data-url"] = str(element["url"])
    rendered = " ".join(f'{name}="{escape(value)}"' for name, value in attributes.items())
    disabled = "" if enabled else " disabled"
    return Markup(f"<button {rendered}{disabled}>{text_object(element.get('text'))}</button>")  # noqa: S704


def _element(element: Any, block_id: str, user_name: UserName, enabled: bool) -> str:
    if not isinstance(element, Mapping):
        return ""
    kind = element.get("type")
    if kind == "button":
        return str(button(element, block_id, enabled=enabled))
    if kind in ("mrkdwn", "plain_text"):
        return str(text_object(element, user_name))
    if kind == "image":
        return f'<span class="muted">[image: {escape(element.get("alt_text") or "")}]</span>'
    return f'<span class="muted">[{escape(kind or "element")}]</span>'


def block(item: Mapping[str, Any], user_name: UserName = _no_user, *, enabled: bool = True) -> str:
    """One message block as HTML (input blocks are drawn by `modal_form`)."""
    kind = item.get("type")
    block_id = str(item.get("block_id") or "")
    if kind == "header":
        return f'<div class="sk-header">{text_object(item.get("text"))}</div>'
    if kind == "divider":
        return '<hr class="sk-divider">'
    if kind == "context":
        inner = " ".join(_element(e, block_id, user_name, enabled) for e in item.get("elements") or [])
        return f'<div class="sk-context">{inner}</div>'
    if kind == "actions":
        inner = "".join(_element(e, block_id, user_name, enabled) for e in item.get("elements") or [])
        return f'<div class="sk-actions" data-block-id="{escape(block_id)}">{inner}</div>'
    if kind == "section":
        parts = []
        if item.get("text"):
            parts.append(f'<div class="sk-text">{text_object(item["text"], user_name)}</div>')
        if item.get("fields"):
            fields = "".join(f"<div>{text_object(f, user_name)}</div>" for f in item["fields"])
            parts.append(f'<div class="sk-fields">{fields}</div>')
        accessory = _element(item.get("accessory"), block_id, user_name, enabled) if item.get("accessory") else ""
        if accessory:
            parts.append(f'<div class="sk-accessory">{accessory}</div>')
        return f'<div class="sk-section">{"".join(parts)}</div>'
    return f'<div class="sk-unknown muted">[{escape(kind or "block")} block]</div>'


def blocks_html(items: Sequence[Mapping[str, Any]] | None, fallback: str = "", user_name: UserName = _no_user,
                *, enabled: bool = True) -> Markup:
    """A message's blocks, or its fallback text when it has none (as Slack shows it)."""
    if not items:
        return Markup(f'<div class="sk-text">{mrkdwn(fallback, user_name)}</div>')  # noqa: S704
    return Markup("".join(block(b, user_name, enabled=enabled) for b in items if isinstance(b, Mapping)))  # noqa: S704


def _options(element: Mapping[str, Any]) -> list[tuple[str, Markup, bool]]:
    initial = (element.get("initial_option") or {}).get("value")
    return [(str(o.get("value") or ""), text_object(o.get("text")), o.get("value") == initial)
            for o in element.get("options") or [] if isinstance(o, Mapping)]


def _input(item: Mapping[str, Any]) -> str:
    block_id = str(item.get("block_id") or "")
    element = item.get("element") or {}
    kind = element.get("type")
    name = escape(block_id)
    label = f'<label class="sk-label">{text_object(item.get("label"))}' + (
        ' <span class="muted">(optional)</span>' if item.get("optional") else "") + "</label>"
    required = "" if item.get("optional") else " required"
    if kind == "plain_text_input":
        limit = f' maxlength="{int(element["max_length"])}"' if element.get("max_length") else ""
        value = escape(element.get("initial_value") or "")
        control = (f'<textarea name="{name}" rows="3"{limit}{required}>{value}</textarea>' if element.get("multiline")
                   else f'<input name="{name}" value="{value}"{limit}{required}>')
    elif kind == "static_select":
        options = "".join(f'<option value="{escape(v)}"{" selected" if chosen else ""}>{t}</option>'
                          for v, t, chosen in _options(element))
        control = f'<select name="{name}"{required}>{options}</select>'
    elif kind == "radio_buttons":
        control = "".join(f'<label class="sk-radio"><input type="radio" name="{name}" value="{escape(v)}"'
                          f'{" checked" if chosen else ""}{required}> {t}</label>'
                          for v, t, chosen in _options(element))
    else:
        control = f'<span class="muted">[{escape(kind or "input")}: not drawn in the sandbox]</span>'
    return f'<div class="sk-input" data-block-id="{name}">{label}{control}<div class="sk-error" hidden></div></div>'


def modal_form(view: Mapping[str, Any], user_name: UserName = _no_user) -> Markup:
    """A modal as a form: its title, blocks (inputs as form controls), Back and submit buttons."""
    body = "".join(_input(b) if b.get("type") == "input" else block(b, user_name)
                   for b in view.get("blocks") or [] if isinstance(b, Mapping))
    submit = text_object(view.get("submit")) if view.get("submit") else Markup("Submit")
    close = text_object(view.get("close")) if view.get("close") else Markup("Cancel")
    return Markup(  # noqa: S704 - built only from escaped parts
        f'<form class="sk-modal" data-view-id="{escape(view.get("id") or "")}">'
        f'<div class="sk-modal-title">{text_object(view.get("title"))}</div>{body}'
        f'<div class="sk-error sk-form-error" hidden></div>'
        f'<div class="sk-modal-buttons"><button type="button" class="sk-btn" data-close>{close}</button>'
        f'<button type="submit" class="sk-btn primary">{submit}</button></div></form>')
