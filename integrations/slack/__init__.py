"""Slack: the Bolt app staff work orders in (cards, modals, `/order`, App Home), its Block Kit, and a fake Web API.

Not a sales channel: nothing here registers in `integrations.CHANNELS`. The web app mounts the Bolt app
(`app.slack_app`), and `jobs.slack` keeps the cards current.
"""
