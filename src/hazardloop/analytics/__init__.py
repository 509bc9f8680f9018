"""KPI definitions and dashboard datasets: one place for every metric (ARCHITECTURE.md §7)."""
