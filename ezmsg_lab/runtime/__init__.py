"""Control loop, GraphServer (embedded or attached) and pipeline launch/stop."""
