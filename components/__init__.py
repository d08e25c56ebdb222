"""One ComponentResource per part of the KB article (Step 1, Parts A–D). No HTTP here."""
