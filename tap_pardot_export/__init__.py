"""tap-pardot-export: a Singer tap for the Account Engagement (Pardot) Export API."""
