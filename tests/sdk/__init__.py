"""The Singer SDK: its standard tap tests, and the contract with the SDK names the tap relies on."""
