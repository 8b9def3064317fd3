"""Policy: the input document, the decision, and the engines that turn one into the other (Rego, remote OPA)."""
