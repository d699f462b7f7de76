"""Every answer checked against what was asked: envelopes, headers, values, CSV, export answers, answers over time."""
