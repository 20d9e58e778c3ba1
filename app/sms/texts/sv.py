"""Svenska texter. Samma nycklar och platshållare som texts/en.py."""

TEXTS: dict[str, str] = {
    "confirmed": "{shop}: Tack! Din beställning {number} är bekräftad. Vi sms:ar när den skickas.",
    "backordered": "{shop}: En del av beställning {number} är restnoterad. Svara VÄNTA för att vänta, "
                   "eller AVBRYT ORDER för att be oss avbryta den.",
    "shipped": "{shop}: Din beställning {number} har skickats med {carrier}. Spåra den: {tracking_url}",
    "shipped_untracked": "{shop}: Din beställning {number} har skickats med {carrier}.",
    "out_for_delivery": "{shop}: Din beställning {number} levereras i dag.",
    "delivered": "{shop}: Din beställning {number} har levererats. Mycket nöje!",
    "exception": "{shop}: Beställning {number} är försenad: {description}. Vi tittar på det.",
    "return_label": "{shop}: Returetiketten för beställning {number} är klar: {label_url}",
    "refunded": "{shop}: Vi har återbetalat {amount} för beställning {number}. Det kan ta några dagar "
                "innan det syns.",
    "staff_reply": "{shop}: {text}",
    "status": "Beställning {number}: {state}.",
    "status_tracking": "Beställning {number}: {state}. Spåra den: {tracking_url}",
    "several_orders": "Du har {count} beställningar: {numbers}. Svara med ett ordernummer för dess status.",
    "unknown_number": "Vi hittar ingen beställning för det här numret. Sms:a oss från numret du angav "
                      "i din beställning.",
    "unknown_order": "Vi hittar ingen beställning {number} för det här numret.",
    "help": "{shop}: Skriv STATUS för din beställnings status, RETUR för att returnera, eller skriv din fråga. "
            "Skriv STOP för att inte få fler sms.",
    "opted_out": "Du får inga fler sms från oss. Skriv START för att få dem igen.",
    "opted_in": "Sms är på igen. Skriv STOP för att stänga av dem.",
    "relayed": "Tack, en person svarar dig här snart.",
    "return_started": "Vi har tagit emot din returbegäran för beställning {number}. Vi sms:ar returetiketten "
                      "och stegen inom kort.",
    "return_refused": "Beställning {number} kan inte returneras via sms (returtiden kan ha gått ut eller varan "
                      "kan vara undantagen). En person återkommer till dig här.",
    "cancel_requested": "Vi har bett vårt team att avbryta beställning {number}. En person bekräftar snart.",
    "cancel_too_late": "Beställning {number} har redan skickats och kan inte avbrytas. Skriv RETUR för att "
                       "skicka tillbaka den.",
    "wait_ack": "Tack, vi skickar beställning {number} så snart allt finns i lager.",
    "text_only": "Vi kan bara läsa text. Skriv gärna din fråga i ett meddelande.",
    "state.received": "mottagen, vi förbereder den",
    "state.needs_review": "mottagen, vi förbereder den",
    "state.approved": "bekräftad, vi förbereder den",
    "state.allocated": "bekräftad, vi förbereder den",
    "state.picking": "packas",
    "state.packed": "packad och skickas snart",
    "state.backordered": "väntar på en vara som är slut i lager",
    "state.on_hold": "kontrolleras av vårt team",
    "state.partially_shipped": "delvis skickad",
    "state.shipped": "skickad",
    "state.delivered": "levererad",
    "state.cancelled": "avbruten",
    "state.return_requested": "retur begärd",
    "state.returned": "returnerad",
    "state.refunded": "återbetald",
}
