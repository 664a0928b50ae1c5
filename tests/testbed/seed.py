MAPPED_PROJECTS = [("vo-ops", "ops")]
class Seeder:
    def __init__(self, lay, clock): pass
    def run(self, skip_if_complete=True): pass
