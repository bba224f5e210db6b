// Placeholder: replaced by the module's first real tests.
