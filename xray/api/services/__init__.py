"""What the routes ask for, as keyword-only async functions over an ``AsyncSession``."""
