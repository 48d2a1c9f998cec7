"""Project scenarios: PettingZoo parallel environments written the way users should write theirs."""
