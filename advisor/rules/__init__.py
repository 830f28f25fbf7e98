"""The deployment rules, defined once: recommend ranks by them, check reports them, CLI options and
policy/config keys are generated from them (advisor.rules.table)."""
