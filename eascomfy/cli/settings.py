"""Global CLI options, set by the app callback and read by every command (import-cheap)."""

TEXT, JSON = "text", "json"


class Settings:
    def __init__(self) -> None:
        self.output = TEXT
        self.verbose = False
        self.quiet = False
        self.color = True


SETTINGS = Settings()
