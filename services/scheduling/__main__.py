from services.runtime.server import main
from services.scheduling.service import SPEC

main(SPEC)
