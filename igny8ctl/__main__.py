from igny8ctl.cli.main import main

raise SystemExit(main())
