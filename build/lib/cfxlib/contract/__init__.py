"""The data contract, declared once: table schemas, parsing and validation, business rules, money."""
