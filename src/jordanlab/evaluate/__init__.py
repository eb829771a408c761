"""jordanlab.evaluate"""
