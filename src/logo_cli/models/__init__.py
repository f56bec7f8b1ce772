"""Pure torch modules: no file I/O, no logging, no stored device."""
