"""The Synerdocs (Directum EDO operator) emulator."""
