"""One router per resource; each handler calls one service and shapes its answer."""
