"""The node's part in federated learning (the models and Flower apps are in ``federation``).

``rows`` turns a wallet journal into a churn history (pure); ``site`` is the node as a federated
site behind its consent-gated loader; ``store`` keeps the privacy budget, runs and global models;
``run`` federates local nodes in process; ``scoring`` serves churn risk behind the
personalization gate; ``deploy`` starts Flower's SuperLink and SuperNodes.
"""
