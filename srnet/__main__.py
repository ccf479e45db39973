from srnet.cli import main

raise SystemExit(main())
