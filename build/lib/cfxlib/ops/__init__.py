"""Operations: health checks of every component, the process supervisor (`cfx up`), releases."""
