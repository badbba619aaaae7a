"""Cases: investigations with observables, comments, tasks and an audit timeline."""
