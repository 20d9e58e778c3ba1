"""Background work on RQ: every job takes ids, loads fresh state and is safe to run twice."""
