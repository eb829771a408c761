"""jordanlab.report"""
