"""jordanlab.curves"""
