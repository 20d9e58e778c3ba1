"""Customer texts: milestone messages, the conversation by SMS, consent, quiet hours (see README's SMS section).

The domain side of SMS: what to say, to whom and when. Twilio itself is reached only from jobs/sms.py through
integrations/twilio; the routes here verify Twilio's requests and answer with TwiML.
"""
