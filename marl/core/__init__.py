"""Pure math shared by the algorithms: no Ray in here, so it tests without starting Ray."""
