"""jordanlab.topology"""
